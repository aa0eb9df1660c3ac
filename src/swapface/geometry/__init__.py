"""swapface.geometry"""
