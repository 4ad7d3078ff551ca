"""What gets queued for delivery, typed: the payload of each outbox row, its JSON form and digest."""
