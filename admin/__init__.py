"""The admin CLI (`iskra …`): an edge like the API, for operators."""
