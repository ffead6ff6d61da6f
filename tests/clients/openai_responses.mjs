// The openai Node package's Responses API against the chat function: create, stream, a tool
// round trip and structured output.
// Usage: node tests/clients/openai_responses.mjs BASE_URL TOKEN MODEL; prints one JSON line of results.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const created = await client.responses.create({ model, input: "Hello from Node" });

let streamed = "";
const stream = client.responses.stream({ model, input: "Stream to Node" });
for await (const event of stream) {
  if (event.type === "response.output_text.delta") streamed += event.delta;
}
const final = await stream.finalResponse();

const tools = [
  {
    type: "function",
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
    strict: true,
  },
];
const first = await client.responses.create({ model, input: "Weather in Paris?", tools, tool_choice: "required" });
const call = first.output.find((item) => item.type === "function_call");
const second = await client.responses.create({
  model,
  tools,
  input: [
    { role: "user", content: "Weather in Paris?" },
    call,
    { type: "function_call_output", call_id: call.call_id, output: "sunny, 21 C" },
  ],
});

const person = await client.responses.create({
  model,
  input: "Invent a person.",
  text: {
    format: {
      type: "json_schema",
      name: "person",
      strict: true,
      schema: {
        type: "object",
        properties: { name: { type: "string" }, age: { type: "integer" } },
        required: ["name", "age"],
        additionalProperties: false,
      },
    },
  },
});

console.log(
  JSON.stringify({
    created: { id: created.id, text: created.output_text, usage: created.usage },
    streamed: { text: streamed, final: final.output_text, usage: final.usage },
    call: { name: call.name, arguments: JSON.parse(call.arguments) },
    answer: second.output_text,
    person: JSON.parse(person.output_text),
  }),
);
