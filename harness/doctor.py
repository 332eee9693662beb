"""Placeholder: being written."""


def doctor(adata, **pca_kwargs):
    raise NotImplementedError
