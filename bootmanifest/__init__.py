"""Host-side builder of the capOS signed boot manifest (DESIGN.md s. 3).

Modules: :mod:`certdata` (Mozilla roots), :mod:`ctlist` (Chrome CT log
list), :mod:`graph` (service graph), :mod:`build` (assembly and
encoding), :mod:`sign` (Ed25519 keys, signing, verification), :mod:`cli`
(``python -m bootmanifest``).
"""
