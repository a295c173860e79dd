"""The party node daemon: datasets, policy, per-job MPC workers. Never imports MPyC."""
