// The Vercel AI SDK's streamText over an OpenAI-compatible chat model (createOpenAI(...).chat) pointed at Conduit.
// usage: node ai_sdk_stream.mjs <baseURL ending in /v1> <api key> <model>
// prints {"text", "finish"} as JSON. streamText does not throw from textStream: errors reach onError, and are
// turned into a non-zero exit here.
import { createOpenAI } from "@ai-sdk/openai";
import { streamText } from "ai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const errors = [];
const result = streamText({
  model: createOpenAI({ baseURL, apiKey }).chat(model),
  prompt: "Say hello",
  maxRetries: 0,
  onError: ({ error }) => errors.push(error),
});
let text = "";
for await (const part of result.textStream) {
  text += part;
}
const finish = errors.length ? null : await result.finishReason;
if (errors.length) {
  for (const error of errors) console.error(error);
  process.exit(1);
}
console.log(JSON.stringify({ text, finish }));
