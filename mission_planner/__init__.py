"""mission_planner"""
