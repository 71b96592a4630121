"""The model, exactly as it travels to the Hub as remote code: these files import only the standard library,
torch, transformers and each other (by relative import), and a saved folder names them by basename."""
