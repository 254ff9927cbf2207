"""`python -m recolor ...` (and `torchrun -m recolor train ...`)."""
from .cli import app

app()
