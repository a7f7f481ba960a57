"""What is trained: architectures as layers of ops, and the workload catalog."""
