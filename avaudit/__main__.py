"""`python -m avaudit` and `torchrun -m avaudit ...`."""
from .cli import main

main()
