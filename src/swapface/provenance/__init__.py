"""swapface.provenance"""
