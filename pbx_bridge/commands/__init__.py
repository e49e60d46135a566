"""Commands to the service that owns a call: the queue (``queue``) and the service's side
that takes them (``taker``)."""
