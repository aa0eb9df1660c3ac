"""swapface.faces"""
