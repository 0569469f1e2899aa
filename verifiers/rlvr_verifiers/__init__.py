"""rlvr's built-in verifiers, registered under the ``rlvr.verifiers`` entry-point group.

Named ``rlvr_verifiers`` rather than ``verifiers`` to avoid clashing with the unrelated PyPI package
of that name. Submodules are imported lazily by the entry points: ``math`` pulls in sympy, which the
arithmetic task does not need.
"""
