"""swapface.executors"""
