"""The server's MQTT side: the wire codec, the broker link, the inbound buffer, the admin client."""
