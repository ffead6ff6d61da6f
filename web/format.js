// Numbers, amounts and dates as the page shows them.

const TOKENS = new Intl.NumberFormat(undefined);
// An answer costs fractions of a cent: two significant digits ("$0.000021").
const ANSWER_USD = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumSignificantDigits: 2 });

/** What one answer used, from the stream's final usage chunk: "57 tokens · $0.000021". */
export function answerCost({ tokens, cost }) {
  if (tokens === undefined) return "";
  return `${TOKENS.format(tokens)} tokens${typeof cost === "number" ? ` · ${ANSWER_USD.format(cost)}` : ""}`;
}

/** A count of tokens or requests (Lago sends units as decimal strings). */
export function count(value) {
  return TOKENS.format(Math.round(Number(value)) || 0);
}

/** Whole cents in ``currency`` (an ISO 4217 code); without one, the bare figure. */
export function money(cents, currency) {
  if (!currency) return (cents / 100).toFixed(2);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`; // a code this browser does not know
  }
}

/** A date of a billing period, "Dec 1, 2025"; "" for none (not the epoch). */
export function day(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleDateString(undefined, { dateStyle: "medium" });
}
