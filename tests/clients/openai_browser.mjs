// Bundled by tests/test_browser_openai.py into a page script: the official `openai` npm package
// making a streamed call from the browser, as a web app would (window.runStream).
import OpenAI from "openai";

window.runStream = async (baseURL, apiKey) => {
  const client = new OpenAI({ baseURL, apiKey, dangerouslyAllowBrowser: true, maxRetries: 0 });
  const { data: stream, response } = await client.chat.completions
    .create({
      model: "openai/gpt-4o-mini",
      messages: [{ role: "user", content: "#words:6" }],
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, usage, requestId: response.headers.get("x-request-id") };
};
