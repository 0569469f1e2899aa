"""Verification: the verifier contract, how verifiers are found, and the process pool that runs them.

A verifier is any object with ``score(VerifySample) -> VerifyResult``. Built-in and third-party
verifiers register under the ``rlvr.verifiers`` entry-point group; a recipe may also name one by
import path (``pkg.mod:Class`` or ``path/to/file.py:Class``). Training scores through
:class:`VerifierPool`, which enforces a hard per-sample deadline by killing worker processes.
"""

from rlvr.verify.base import Verifier, VerifyResult, VerifySample
from rlvr.verify.pool import VerifierPool, VerifierPoolError, VerifierSpec
from rlvr.verify.registry import ENTRY_POINT_GROUP, VerifierInitError, available_verifiers, load_verifier

__all__ = [
    "ENTRY_POINT_GROUP",
    "Verifier",
    "VerifierInitError",
    "VerifierPool",
    "VerifierPoolError",
    "VerifierSpec",
    "VerifyResult",
    "VerifySample",
    "available_verifiers",
    "load_verifier",
]
