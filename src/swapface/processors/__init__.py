"""swapface.processors"""
