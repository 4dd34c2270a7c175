"""Console views (to be written)."""


def register(admin):
    pass
