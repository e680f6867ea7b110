"""Socket.IO events: parse and validate, call one service, shape the ack."""
