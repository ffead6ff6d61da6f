// A streamed answer read into its message: the text, the tool calls and, from the final usage
// chunk, the tokens and cost billed (OpenAI's chat.completion.chunk events, as the API sends them).

import { problemFrom } from "./api.js";
import { sseData } from "./sse.js";

/** A new, empty assistant message to read an answer into. */
export function newAnswer() {
  return { role: "assistant", content: "", toolCalls: [] };
}

/**
 * Reads ``response``'s events into ``answer``, calling ``changed()`` after each one; throws the
 * Problem of an error event (the stream broke after it started) and AbortError when stopped.
 */
export async function readAnswer(response, answer, changed) {
  for await (const data of sseData(response.body)) {
    if (data === "[DONE]") break;
    const event = JSON.parse(data);
    if (event.error) throw problemFrom(500, event.error);
    const delta = event.choices?.[0]?.delta;
    if (delta?.content) answer.content += delta.content;
    if (Array.isArray(delta?.tool_calls)) addToolCallPieces(answer.toolCalls, delta.tool_calls);
    if (event.usage) {
      answer.tokens = Number(event.usage.total_tokens) || 0;
      if (typeof event.usage.cost === "number") answer.cost = event.usage.cost;
    }
    changed();
  }
}

// delta.tool_calls pieces: the first piece of a call has its index, id and name; later pieces
// with the same index carry more of the arguments' JSON text.
function addToolCallPieces(calls, pieces) {
  for (const piece of pieces) {
    const index = Number.isInteger(piece.index) ? piece.index : calls.length;
    const call = (calls[index] ||= { name: "", arguments: "" });
    if (piece.function?.name) call.name += piece.function.name;
    if (piece.function?.arguments) call.arguments += piece.function.arguments;
  }
}
