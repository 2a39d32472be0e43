"""`python -m avaudit` and `torchrun -m avaudit ...`."""
from avaudit.cli import main

main()
