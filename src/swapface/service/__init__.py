"""swapface.service"""
