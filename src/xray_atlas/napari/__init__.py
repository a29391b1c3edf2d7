"""The napari face of xray-atlas: reader, writer, sample data and dock widgets.

Everything here turns user actions into core calls on worker threads and core results
into layers; no computation lives in this package.
"""
