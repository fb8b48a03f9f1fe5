// openai-node streaming a chat completion through Conduit, as its README shows.
// usage: node openai_stream.mjs <baseURL ending in /v1> <api key> <model>
// prints {"text", "chunks", "finish"} as JSON; any error exits non-zero with the error on stderr.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Say hello" }],
  stream: true,
});
let text = "";
let chunks = 0;
let finish = null;
for await (const chunk of stream) {
  chunks += 1;
  text += chunk.choices[0]?.delta?.content ?? "";
  finish = chunk.choices[0]?.finish_reason ?? finish;
}
console.log(JSON.stringify({ text, chunks, finish }));
