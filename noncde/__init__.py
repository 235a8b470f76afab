"""Outside PCI scope: everything that only ever sees vault tokens."""
