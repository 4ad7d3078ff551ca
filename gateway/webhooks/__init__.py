"""Webhooks for the ordering system (pure): the events a registration's state changes become, their JSON
body (ids, states and codes only, never personal data), the Standard Webhooks signature, and the rules a
callback URL must meet.  The store writes events; ``gateway.delivery.webhooks`` sends them."""
