"""Built-in plugins: registered through our own entry points, exactly like third-party ones."""
