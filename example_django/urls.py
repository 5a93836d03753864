from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("items", views.put_item),
    path("items/<str:item_id>", views.get_item),
    path("work", views.work),
]
