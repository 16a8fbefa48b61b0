"""Flows: the 2-D Navier–Stokes solver (`navier_stokes`), generated flow runs on disk (`runs`) and
the field families the product generates for training and judging learned models (`fieldsets`)."""
