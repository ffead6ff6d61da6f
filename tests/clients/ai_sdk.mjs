// The Vercel AI SDK against the chat function: generateText with a required tool, and
// generateObject with a schema, through @ai-sdk/openai's Chat Completions model.
// Usage: node tests/clients/ai_sdk.mjs BASE_URL TOKEN MODEL; prints one JSON line of results.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, tool } from "ai";
import { z } from "zod";

const [baseURL, apiKey, modelId] = process.argv.slice(2);
const provider = createOpenAI({ baseURL, apiKey });
const model = provider.chat(modelId);

const withTool = await generateText({
  model,
  prompt: "What is the weather in Paris? Use get_weather.",
  tools: {
    get_weather: tool({
      description: "The weather in a city",
      inputSchema: z.object({ city: z.string(), days: z.number().int() }),
    }),
  },
  toolChoice: "required",
  maxRetries: 0,
});

const structured = await generateObject({
  model,
  prompt: "Invent a person.",
  schema: z.object({ name: z.string(), age: z.number().int() }),
  schemaName: "person",
  maxRetries: 0,
});

console.log(
  JSON.stringify({
    toolCalls: withTool.toolCalls.map((c) => ({ name: c.toolName, input: c.input })),
    finishReason: withTool.finishReason,
    object: structured.object,
  }),
);
