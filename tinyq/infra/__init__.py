"""What every stage stands on: child processes tied to tinyq's life (proc), work in a worker process that may
crash (isolate), output paths checked before work (outputs) and folders written whole or not at all (staging)."""
