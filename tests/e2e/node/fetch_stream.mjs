// A hand-written fetch reader, the way people write them: read the body, split it into blocks on a blank line,
// parse each `data:` line as JSON.
// usage: node fetch_stream.mjs <baseURL ending in /v1> <api key> <model>
// prints {"text", "finish", "comments", "blocksWithoutData"} as JSON; any error exits non-zero.
const [baseURL, apiKey, model] = process.argv.slice(2);
const response = await fetch(`${baseURL}/chat/completions`, {
  method: "POST",
  headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
  body: JSON.stringify({ model, messages: [{ role: "user", content: "Say hello" }], stream: true }),
});
if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
const reader = response.body.getReader();
const decoder = new TextDecoder();
let buffer = "";
let text = "";
let finish = null;
let comments = 0;
let blocksWithoutData = 0;
let done = false;
while (!done) {
  const { value, done: ended } = await reader.read();
  if (ended) break;
  buffer += decoder.decode(value, { stream: true });
  const blocks = buffer.split("\n\n");
  buffer = blocks.pop();
  for (const block of blocks) {
    const lines = block.split("\n");
    comments += lines.filter((line) => line.startsWith(":")).length;
    const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice(6));
    if (!data.length) blocksWithoutData += 1;
    for (const payload of data) {
      if (payload === "[DONE]") {
        done = true;
        break;
      }
      const chunk = JSON.parse(payload);
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
  }
}
console.log(JSON.stringify({ text, finish, comments, blocksWithoutData }));
