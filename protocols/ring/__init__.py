"""Two-owner secret sharing in Z_2^64 with a third party as dealer (``protocols.ring.dealer``):
the comparison engine of the models' helper routes (``protocols.models.kmeans_ring``)."""
