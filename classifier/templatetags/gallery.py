"""Template filters for the gallery's cards and image page."""
from django import template
from django.conf import settings

register = template.Library()


@register.filter
def percent(score):
    """0.62 → "62%"; a score that rounds to nothing is "<1%", not a misleading "0%"."""
    if score is None:
        return ""
    return "<1%" if 0 < score < 0.005 else f"{round(score * 100)}%"


@register.simple_tag
def low_confidence_below():
    """The LOW_CONFIDENCE_BELOW threshold as a percentage, for the pages' explanations."""
    return percent(settings.LOW_CONFIDENCE_BELOW)
