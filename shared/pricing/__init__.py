"""What the provider will charge for a request: the one home of every token and cost figure.

- ``usage``: a call's usage as the provider counted it (``CallUsage``, read from LiteLLM's
  normalised usage) and its price, the same for every event, ``usage.cost``, settle and partial bill;
- ``estimate``: what a request may use at most, counted before the call (the budget's
  reservation, the TPM limit and a cut stream's prompt), and that worst case's price;
- ``model_prices``: the operator's prices for models LiteLLM's cost map lacks (``CHAT_MODEL_PRICES``).

Nothing is imported here: ``settings`` reads ``model_prices`` before LiteLLM may be imported.
"""
