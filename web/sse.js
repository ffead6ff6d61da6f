// A small Server-Sent Events reader: yields the data of each event of a fetch() response body
// (the "data:" lines of one event joined by "\n"), as soon as the event is complete.
// Comments, "event:", "id:" and "retry:" lines are ignored: the chat API sends data only.

export async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let carriageReturn = ""; // a "\r" that ended a chunk: its "\n" may start the next one
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      let text = carriageReturn + value;
      carriageReturn = text.endsWith("\r") ? "\r" : "";
      if (carriageReturn) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, "\n");
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const event of events) {
        const data = dataOf(event);
        if (data !== null) yield data;
      }
    }
    const rest = dataOf(buffer + (carriageReturn && "\n"));
    if (rest !== null) yield rest;
  } finally {
    // Also when the caller stops early: let go of the response (a no-op once it has ended).
    reader.cancel().catch(() => {});
  }
}

function dataOf(event) {
  const lines = event
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).replace(/^ /, ""));
  return lines.length ? lines.join("\n") : null;
}
