"""What the gRPC servers share: mTLS serving with health and reflection, proto conversions, watch-
stream wake-ups.
"""
