// The usage panel: the user's billing period as the usage function reads it from Lago (amount,
// budget left, tokens and requests per model), refreshed after each answer.

import { describe, endpoints } from "./api.js";
import { count, day, money } from "./format.js";
import { el, ui } from "./page.js";

export class UsagePanel {
  constructor(api) {
    this.api = api;
    this.requests = 0; // only the latest refresh may paint
  }

  async refresh() {
    const mine = ++this.requests;
    ui.usage.setAttribute("aria-busy", "true");
    let paint;
    try {
      const usage = await this.api.get(endpoints().usage);
      paint = () => paintUsage(usage);
    } catch (error) {
      paint = () => ui.usageBody.replaceChildren(el("p", `Usage is not available: ${describe(error)}`));
    }
    if (mine !== this.requests) return; // a newer refresh is on its way
    paint();
    ui.usage.dataset.refreshes = String(Number(ui.usage.dataset.refreshes || 0) + 1);
    ui.usage.removeAttribute("aria-busy");
  }

  clear() {
    this.requests++;
    ui.usageBody.replaceChildren();
  }
}

function paintUsage(usage) {
  const parts = [el("p", amountLine(usage), { id: "usage-amount" })];
  if (usage.amount_cents === 0 && usage.models.some((m) => Number(m.tokens) > 0)) {
    parts.push(el("p", "Usage is counted in whole cents; each answer shows its exact cost.", { class: "note" }));
  }
  if (usage.budget) {
    const { limit_cents: limit, remaining_cents: remaining } = usage.budget;
    const line = `Budget ${money(limit, usage.currency)}: ${money(Math.max(remaining, 0), usage.currency)} left.`;
    parts.push(el("p", line, { id: "usage-budget", class: remaining <= 0 ? "warning" : "" }));
  }
  parts.push(usage.models.length ? modelsTable(usage.models) : el("p", "No tokens used yet this period."));
  ui.usageBody.replaceChildren(...parts);
}

// Lago keeps usage in whole cents while an answer costs fractions of one: below a cent the panel
// says "less than" rather than "$0.00" (and a note says why).
function amountLine({ amount_cents: cents, currency, period, models }) {
  const [from, to] = [day(period?.from), day(period?.to)];
  const when = from && to ? ` (${from} – ${to})` : "";
  if (!currency && !cents) return "Nothing used yet."; // a user Lago has no subscription for yet
  if (cents === 0 && models.some((m) => Number(m.tokens) > 0)) return `Less than ${money(1, currency)} used this period${when}.`;
  return `${money(cents, currency)} used this period${when}.`;
}

function modelsTable(models) {
  const table = el("table", "", { id: "usage-models" });
  const head = document.createElement("tr");
  head.append(el("th", "Model", { scope: "col" }), el("th", "Tokens", { scope: "col" }), el("th", "Requests", { scope: "col" }));
  const rows = models.map((m) => {
    const row = document.createElement("tr");
    row.dataset.model = m.model;
    row.append(
      el("th", m.model, { scope: "row" }),
      el("td", count(m.tokens), { class: "tokens" }),
      el("td", count(m.requests), { class: "requests" }),
    );
    return row;
  });
  table.append(el("caption", "Tokens per model"), document.createElement("thead"), document.createElement("tbody"));
  table.tHead.append(head);
  table.tBodies[0].append(...rows);
  return table;
}
