"""The device side of OTA updates: install, status, rollback and the agent, from the bundle's own runtime.

Nothing here is imported by the other runtime modules; ``python -m edgepack_runtime.device``
is the device's command line (``__main__``), ``edgepack device`` the workstation's.
"""
