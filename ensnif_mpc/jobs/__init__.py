"""Jobs: specifications, states, threat-model manifests, signed approvals, the node/worker
contract, and the checks coordinator and nodes both run.
"""
