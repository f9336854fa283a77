"""features: valid transactions in, point-in-time feature vectors out.

``definitions`` is the feature table and its version, ``store`` keeps the state in Redis
(one script call per batch; ``scripts`` assembles the Lua), ``reference`` computes the same features with plain lists,
``service`` is the Kafka loop and ``bench`` measures the store.
"""
