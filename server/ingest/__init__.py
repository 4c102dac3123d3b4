"""The hot path: inbound messages validated, stored in batches, acknowledged after commit."""
