"""The AlexNet-style feature network and its checkpoints."""
