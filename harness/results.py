"""Placeholder: being written."""


def load_results(path):
    raise NotImplementedError
