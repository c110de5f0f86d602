"""Connectors: parse each vendor's native payloads, and move them into Kafka.

One module per source kind (``crm``, ``billing``, ``product``, ``support``) holds
only parsing; transports (webhook, file replay, REST polling) are shared.
"""
