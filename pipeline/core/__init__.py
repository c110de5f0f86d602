"""The pure core: deterministic Python over typed events, no Kafka inside.

Everything here can be unit-tested and replayed; the Faust agents are thin
wiring around it.
"""
