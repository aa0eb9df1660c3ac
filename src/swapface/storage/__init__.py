"""swapface.storage"""
