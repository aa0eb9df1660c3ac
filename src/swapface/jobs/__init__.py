"""swapface.jobs"""
