"""swapface.media"""
