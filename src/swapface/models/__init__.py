"""swapface.models"""
