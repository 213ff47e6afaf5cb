def apply(module):
    pass
