"""Built-in offline RL backbones."""
